"""The model: configuration, networks (denoiser, ControlNet, control encoders), diffusion, the text
encoder, checkpoints and bundled weights, and training."""
