"""Motion model: the HumanML3D representation, motion data and corpus, the diffusion model and its
control (stage 1 guidance, projection, foot lock), and `sampling`, the one entry point the tools use.

Subpackages: `representation` (skeleton, rotations, features), `data` (BVH, rigs, corpus, captions,
dataset), `model` (config, networks, diffusion, text encoder, checkpoints, weights, training),
`control` (constraint batches, Align, guidance, projection, foot lock). Top-level modules are the
shared core: `constraints` (the domain types), `errors`, `fileio`, `motion_metrics`, `sampling`.
Knows nothing of agents or tools (imports go ikmo → eval → agents → tools → motion_model).
"""
