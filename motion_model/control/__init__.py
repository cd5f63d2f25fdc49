"""Control: the batched constraint tensors, Align, stage 1's gradient guidance, the exact
projection and the foot lock. Imports run align → projection → guidance (no cycle)."""
