// Package augment makes the two random views of an image that SimCLR trains
// on, with torchvision's semantics, and converts decoded images to float32
// CHW tensors in [0, 1].
//
// A view is made in two stages. Draw takes every random decision from a
// caller-supplied *rand.Rand (math/rand/v2): the RandomResizedCrop
// rectangle (torchvision's get_params, 10 attempts then the centre-crop
// fallback), the horizontal flip (p=0.5), whether ColorJitter applies
// (p=0.8) and, if so, its random order and factors, RandomGrayscale (p=0.2)
// and, when enabled, Gaussian blur (p=0.5, sigma in [0.1, 2]). Apply then
// runs deterministic filters: gift crops and resizes (bilinear, with
// antialiasing when shrinking, as PIL does) into an 8-bit image, which is
// converted to float32 CHW, flipped on the way, and the colour operations run
// in float32 on that buffer. The same seed therefore reproduces a view
// exactly, whichever goroutine makes it.
//
// The colour operations follow torchvision's tensor implementations
// (torchvision.transforms.functional_tensor): brightness, contrast and
// saturation blend with black, the mean grey level and the per-pixel grey
// level, clamped to [0, 1]; hue shifts the HSV hue. gift's Brightness,
// Contrast, Saturation and Hue filters are not used because they compute
// something else: Brightness adds a constant instead of scaling, Contrast
// pivots on 0.5 instead of the image's mean grey level, and Saturation and
// Hue work in HSL instead of HSV. Grey levels use ITU-R 601-2 luma
// (0.299, 0.587, 0.114).
//
// A Pipeline holds scratch buffers and is not safe for concurrent use: give
// each worker goroutine its own.
package augment
