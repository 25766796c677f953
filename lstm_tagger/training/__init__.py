"""Training: the loop, distillation, distributed data-parallel runs, the memory bound, the starter config."""
