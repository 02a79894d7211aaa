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
// completes. It is not done: the optimizers update whole tensors (LARS
// needs each tensor's norms), and on the CPU the update of all of
// ResNet18 takes a few percent of a step (measured in the package
// README figures of the final report), less than the reduction it would
// overlap. The buckets are kept because 1M-float buckets all in flight
// halve the reduction time against one AllreduceSum.
package dist
