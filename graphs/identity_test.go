package graphs_test

import (
	"testing"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
)

// TestIdentityOfEarlierCheckpoints pins the identities that checkpoints
// written before the identity's encoding was spelled out carry (computed
// by the earlier code, which hashed fmt's %+v of the configuration): such a
// checkpoint resumes only if its configuration's Identity is unchanged.
// Together with TestIdentityOfEarlierConfigurations (the default set) it
// covers every optional field: BatchNorm groups, shards, the GPU variant,
// and both with shards.
func TestIdentityOfEarlierCheckpoints(t *testing.T) {
	for _, c := range []struct {
		cfg  graphs.Config
		want string
	}{
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 32}, "2906033a6820f623"},
		{graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 224}, "c02a5bb9ce79cde1"},
		{graphs.Config{Arch: "resnet50", Stem: "imagenet", ImageSize: 64, Pairs: 16, ProjectionDim: 128, Temperature: 0.2}, "7b7c2b152bfe9dee"},
		{graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 28, Pairs: 8, BNGroups: 2}, "8ee21e67f4f9ded5"},
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 8, Shards: 2}, "38b86b99afd1db72"},
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 64, BNLowering: "primitive", ConvGrad: "gpu"}, "f5ad4d9fdf10706e"},
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 64, BNLowering: "primitive", ConvGrad: "gpu", Shards: 2}, "83d83b91c8c56bd0"},
	} {
		b, err := gen.Build(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Manifest.Identity(); got != c.want {
			t.Errorf("%s: identity %s, want %s: checkpoints of this configuration would no longer resume", c.cfg.Defaults().Name(), got, c.want)
		}
	}
}
