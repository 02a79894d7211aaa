// Package dist runs simclr-ort's data-parallel training step across MPI
// ranks: it binds runtime/step's Split graphs to a runtime/mpi communicator
// and runs the protocol of graphs.Distributed, lays a global batch out in
// rank blocks, and moves the initial state and checkpoints from rank 0 to
// the others.
//
// # One step
//
// With W ranks of n pairs each, every rank
//
//  1. runs the forward graph on its 2n views (z [2n,p], its new running
//     statistics, the saved activations);
//  2. all-gathers z in rank order into z_all [2nW,p] (2nWp floats);
//  3. runs the loss graph on z_all: the global NT-Xent loss, identical on
//     every rank, and dL/dz_all;
//  4. runs the backward graph on its rows of dL/dz_all: its part of every
//     gradient;
//  5. all-reduces the gradients with a sum, scale 1 (AllreduceSumBuckets in
//     buckets of BucketFloats), and the new running statistics with a mean
//     (one AllreduceMean, which also carries the stop flag, see Step.Run).
//
// The caller then applies the same optimizer update on every rank, with a
// learning rate scaled by the global batch Wn, and commits the running
// statistics. All ranks hold the same parameters at every step: they start
// from rank 0's (Step.SyncState) and apply identical updates to identical
// sums (Open MPI's ring all-reduce gives every rank the same bits).
//
// Composed over the ranks this is exactly the single training graph of
// graphs.Distributed.Equivalent (Wn pairs in W BatchNorm shards) on the
// same views; the mpi-tagged tests check it under mpirun.
//
// # Bytes per step
//
// Per rank and step the collectives move: the all-gather, 2nWp float32
// received; the gradient all-reduce, P float32 (11.47M for ResNet18, 27.8M
// for ResNet50, projector included), which a ring sends and receives 2(W-1)/W times; the
// running statistics, B float32 (9.6K for ResNet18, 53K for ResNet50)
// plus one. See
// BytesPerStep.
//
// # Overlap
//
// AllreduceSumBuckets could run the optimizer on each bucket as it
// completes. It is not done, because it would not pay here: the optimizers
// update whole tensors (LARS needs each tensor's norms), and the LARS update
// of all of ResNet18 takes 31 ms on one core (BenchmarkLARSResNet18),
// 1.5% of a 2.1 s step of two ranks of 64 pairs at 28 px, of which the
// gradient all-reduce took 75 ms including the wait for the slower rank.
// The buckets are kept because 1M-float buckets all in flight halve the
// reduction time against one AllreduceSum (runtime/mpi's figures).
//
// Measured on a 2-core VM shared with another training job (load 4-5),
// ResNet18, ImageNet stem, 28 px, global batch 128, 10 steps: two ranks of
// 64 pairs with one ONNX Runtime thread each took a median 2.13 s per step
// (forward 670 ms, all-gather 62 ms, loss 1 ms, backward 1304 ms, gradient
// all-reduce 75 ms, statistics all-reduce 1.3 ms, means on rank 0; the
// collectives' times are mostly waiting for the other rank); one process
// of 128 pairs with two threads took 3.56 s in 2 BatchNorm shards and
// 3.99 s in one.
package dist
