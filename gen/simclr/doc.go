// Package simclr assembles the SimCLR graphs from the graph package:
// torchvision's ResNet18 and ResNet50 (ImageNet or CIFAR stem, fc removed),
// the projector Linear(d,d) - ReLU - Linear(d,p) without biases, the NT-Xent
// loss, and their gradients. Parameter names, order and initialisation
// follow torchvision, so PyTorch state_dicts map one to one.
package simclr
