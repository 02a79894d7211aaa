package graphs

// Graph input and output names shared by every configuration: the contract
// the generator writes and the runtime reads.
const (
	// TrainInput is the training graph's (and the distributed forward and
	// backward graphs') batch of views [2N,3,H,W].
	TrainInput = "views"
	// LossOutput is the training graph's (and the distributed loss graph's)
	// loss [1].
	LossOutput = "loss"
	// InferenceInput and InferenceOutput are the inference graph's images
	// [batch,3,H,W] and features [batch,FeatureDim].
	InferenceInput  = "images"
	InferenceOutput = "features"
	// ProjectionOutput is the projection z [batch,p] of an inference graph
	// built with the projector.
	ProjectionOutput = "projection"
)

// Names of the distributed graphs (see Distributed).
const (
	// ProjectionName is the forward graph's output z [2n,p].
	ProjectionName = "z"
	// GatheredName is the loss graph's input z_all [2nW,p].
	GatheredName = "z_all"
	// GatheredGradName is the loss graph's output dL/dz_all [2nW,p].
	GatheredGradName = "dz_all"
	// ProjectionGradName is the backward graph's input dL/dz [2n,p].
	ProjectionGradName = "dz"
	// SavedPrefix starts the names of the activations the forward graph
	// outputs and the backward graph takes.
	SavedPrefix = "saved."
	// PartialGradPrefix starts the names of the backward graph's outputs: a
	// rank's part of each parameter's gradient; the sum over ranks is the
	// gradient.
	PartialGradPrefix = "partial_grad."
)

// GradOutput is the training graph's output of a parameter's gradient, and
// NewOutput its output of a running statistic's new value.
func GradOutput(param string) string { return "grad." + param }

// NewOutput is the training graph's output of a running statistic's new
// value.
func NewOutput(buffer string) string { return "new." + buffer }

// FeatureDim is the size of the encoder's feature h for an architecture
// (torchvision's ResNet without fc).
func FeatureDim(arch string) int {
	if arch == "resnet50" {
		return 2048
	}
	return 512
}
