// Package data reads the image datasets simclr-ort trains on and feeds them
// to the trainer as batches of augmented view pairs.
//
// Datasets: an image folder laid out as ROOT/CLASS/IMAGE (classes and files
// ordered as torchvision's ImageFolder orders them), the idx files of MNIST
// and Fashion-MNIST (gzipped or not) and the CIFAR-10 binary batches. Open
// takes a --data value such as "fmnist:/usr/share/datasets/fashion-mnist" or
// a plain path whose format is detected when that is unambiguous; OpenWith
// takes Options (the JPEG decoder, the limit on an image's pixels), never
// environment variables. Files are verified as they are read: a gzipped
// idx file is read to its end so that its CRC-32 and length are checked,
// and an image whose header declares more pixels than the limit is refused
// before it is decoded.
//
// A Loader shuffles a dataset every epoch, drops the last partial batch, and
// has worker goroutines decode images and write their two augmented views
// into [2N, 3, H, W] float32 batch buffers (view 1 of image i at slot i,
// view 2 at slot i+N) taken from a small ring that the consumer recycles.
// Every random choice comes from generators seeded by (seed, epoch,
// position), so batches do not depend on the number of workers or their
// scheduling, and a run resumed at any step sees the same batches.
// Unreadable images are counted and replaced.
package data
