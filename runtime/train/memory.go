package train

import "github.com/simclr-ort/simclr-ort/graphs"

// StepMemory is a lower bound of the memory one training step of cfg
// takes, in bytes: every convolution's output and the BatchNorm and ReLU
// outputs after it, which the backward pass reads, for all 2N views, as
// float32 (gradients, workspace and the parameters come on top). A
// configuration whose StepMemory exceeds the machine's memory cannot run;
// checking it first turns what would be an out-of-memory crash into an
// error that says so.
func StepMemory(cfg graphs.Config) int64 {
	cfg = cfg.Defaults()
	side := int64(cfg.ImageSize)
	var floats int64 // per view
	conv := func(channels, stride int64) {
		side = (side + stride - 1) / stride
		floats += 3 * channels * side * side
	}
	if cfg.Stem == "cifar" {
		conv(64, 1)
	} else {
		conv(64, 2)
		side = (side + 1) / 2 // max-pool
		floats += 64 * side * side
	}
	blocks, bottleneck := []int{2, 2, 2, 2}, false
	if cfg.Arch == "resnet50" {
		blocks, bottleneck = []int{3, 4, 6, 3}, true
	}
	planes := int64(64)
	for layer, count := range blocks {
		for b := 0; b < count; b++ {
			stride := int64(1)
			if layer > 0 && b == 0 {
				stride = 2
			}
			if bottleneck {
				conv(planes, 1)
				conv(planes, stride)
				conv(4*planes, 1)
			} else {
				conv(planes, stride)
				conv(planes, 1)
			}
			if b == 0 && (stride != 1 || bottleneck) {
				// The shortcut's 1x1 convolution and BatchNorm.
				floats += 2 * channelsOut(planes, bottleneck) * side * side
			}
		}
		planes *= 2
	}
	return 4 * floats * 2 * int64(cfg.Pairs)
}

func channelsOut(planes int64, bottleneck bool) int64 {
	if bottleneck {
		return 4 * planes
	}
	return planes
}
