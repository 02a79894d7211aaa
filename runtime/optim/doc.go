// Package optim implements the optimizers simclr-ort applies on the Go side
// after each training step: LARS as in the official SimCLR (classic momentum,
// trust coefficient, weight decay and trust-ratio adaptation skipped for
// BatchNorm parameters and biases), Adam with PyTorch's semantics, and the
// SimCLR learning-rate schedule (batch-scaled peak, linear warm-up, cosine
// decay to zero, stepped per step).
//
// The optimizers update []float32 parameter buffers in place, do not allocate
// per element, and split the work over goroutines by tensor, balanced by size.
// Every tensor is updated by exactly one goroutine in a fixed element order,
// so results do not depend on the number of workers.
//
// Norms are accumulated in float64; element updates are done in float32, as
// the official float32 implementations do.
//
// Only the standard library is used.
package optim
