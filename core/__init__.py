"""ember's single-process core: tensors, autograd, nn, optim, data, serialization."""
