// Package checkpoint saves and loads the full state of a simclr-ort training
// run (parameters, BatchNorm running statistics, optimizer state, schedule
// and data-loader position, the manifest's identity and configuration) so
// that a resumed run continues exactly where the saved one stopped.
//
// # Crash safety
//
// Save writes the new checkpoint to a temporary file in the same directory
// (path + ".tmp-<pid>-<random>"), syncs it to disk, renames it over path and
// syncs the directory. Rename is atomic, so a crash or SIGKILL at any moment
// leaves at path either the previous complete checkpoint or the new complete
// one, never a mixture. When Save fails it removes its temporary file and
// path is untouched. A temporary file left by a killed process is removed by
// the next Save to the same path. No ".prev" copy is kept: the rename already
// guarantees an intact checkpoint, and a copy would double the disk space
// (about 200 MB for ResNet50 with LARS); a caller that wants history saves
// under several names.
//
// Load checks everything before it returns: the magic, the format version,
// a checksum over the header, the header's consistency (shapes, byte
// lengths, offsets, optimizer slots matching the parameters), the file's
// length, and a checksum over the whole file. A truncated, damaged or
// foreign file gives an error that says so and satisfies
// errors.Is(err, ErrCorrupt).
//
// # File format, version 1
//
// All integers are little-endian.
//
//	offset  size  content
//	0       8     magic "SIMCLRCK"
//	8       4     format version, uint32 (1)
//	12      4     header length H, uint32
//	16      4     CRC-32C (Castagnoli) of the H header bytes, uint32
//	20      H     header: UTF-8 JSON, padded with spaces so that the data
//	              starts at a multiple of 64 bytes
//	20+H    D     data: every tensor's values as raw little-endian IEEE 754
//	              float32, back to back, in header order
//	20+H+D  4     CRC-32C of bytes [0, 20+H+D), uint32
//
// The header holds every field of Checkpoint except the tensor values:
//
//	{
//	  "manifest_identity": "3f2a...",
//	  "config": {"arch": "resnet18", "stem": "cifar", "image_size": 32, ...},
//	  "step": 3000, "epoch": 7, "step_in_epoch": 264, "seed": 1,
//	  "schedule": {"peak_lr": 0.15, "warmup_steps": 390, "total_steps": 39000},
//	  "optimizer": {"kind": "lars", "steps": 3000, "slots": [[TENSOR, ...]]},
//	  "params": [TENSOR, ...],
//	  "buffers": [TENSOR, ...],
//	  "meta": {"args": "...", "version": "..."},
//	  "saved": "2026-01-02T15:04:05.999999999Z",
//	  "data_bytes": 183510016
//	}
//
// where each TENSOR is
//
//	{"name": "encoder.conv1.weight", "shape": [64, 3, 3, 3], "offset": 0, "bytes": 6912}
//
// with offset counted from the start of the data section and bytes equal to
// 4 times the product of shape. The data section holds the parameters, then
// the buffers, then optimizer slot 0 for every parameter, slot 1, and so
// on; offsets run contiguously in that order and sum to data_bytes. Slot
// tensors carry the name and shape of the parameter they belong to. A tensor
// can be read in place, e.g. with numpy.memmap(path, "<f4", offset=20+H+offset).
// Readers ignore unknown header fields; a change that an older reader would
// misread gets a new format version.
//
// A ResNet18 checkpoint with LARS momentum is about 92 MB, a ResNet50 one
// about 190 MB. Save streams the tensors from the caller's buffers through
// a 64 KiB buffer, with no copy of the whole state; Load reads each tensor
// straight into its own slice.
//
// Only the standard library is used.
package checkpoint
