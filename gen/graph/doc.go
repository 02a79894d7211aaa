// Package graph builds ONNX graphs from Go and differentiates them.
//
// A Graph holds typed values with static shapes that are checked while the
// graph is built; a mistake in a model's wiring panics at once with the op
// and the shapes involved. Node and value names are deterministic, constants
// are deduplicated, and Marshal pins the IR version and the opset (standard
// ONNX domain only), so the same build always yields the same bytes.
//
// Reverse-mode differentiation (Gradients) walks the nodes backwards and calls
// one vector-Jacobian product (VJP) per op. Each op's builder and its VJP sit
// side by side in an ops_*.go file and the VJP is registered in one table; an
// op without a rule fails loudly, naming the op. GradientsFrom runs the same
// driver from given upstream gradients instead of a scalar loss, and Mark,
// Saved and Extract cut a graph built as "forward, then backward" into two
// graphs that run in turn, the first handing the second the activations it
// needs.
package graph
