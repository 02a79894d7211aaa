package graphs

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Identity is a digest of the parameter layout and configuration: two
// manifests with the same Identity take the same checkpoints. It hashes
// IdentityText.
func (m *Manifest) Identity() string {
	s := sha256.Sum256([]byte(IdentityText(m.Config, append(append([]Tensor(nil), m.Params...), m.Buffers...))))
	return hex.EncodeToString(s[:])[:16]
}

// IdentityText is the canonical text behind Identity: the configuration,
// then every tensor's name, shape and role, each followed by "|":
//
//	{Arch:resnet18 Stem:cifar ImageSize:32 Pairs:128 ProjectionDim:64 Temperature:0.5 BNGroups:1 BNLowering:onnx}|encoder.conv1.weight[64 3 3 3]conv_weight|...
//
// The configuration lists the fields Config had when checkpoints were
// first written; Shards is appended when it is set, and a configuration
// with ConvGrad lists every field, Shards included. Every identity of
// checkpoints written since therefore stays as it was
// (TestIdentityOfEarlierConfigurations pins them). A new Config field must
// likewise be appended only when set.
func IdentityText(c Config, tensors []Tensor) string {
	var b strings.Builder
	b.WriteString("{Arch:" + c.Arch + " Stem:" + c.Stem +
		" ImageSize:" + strconv.Itoa(c.ImageSize) + " Pairs:" + strconv.Itoa(c.Pairs) +
		" ProjectionDim:" + strconv.Itoa(c.ProjectionDim) +
		" Temperature:" + strconv.FormatFloat(c.Temperature, 'g', -1, 64) +
		" BNGroups:" + strconv.Itoa(c.BNGroups) + " BNLowering:" + c.BNLowering)
	if c.Shards != 0 || c.ConvGrad != "" {
		b.WriteString(" Shards:" + strconv.Itoa(c.Shards))
	}
	if c.ConvGrad != "" {
		b.WriteString(" ConvGrad:" + c.ConvGrad)
	}
	b.WriteString("}|")
	for _, t := range tensors {
		b.WriteString(t.Name + "[")
		for i, d := range t.Shape {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatInt(d, 10))
		}
		b.WriteString("]" + t.Role + "|")
	}
	return b.String()
}
