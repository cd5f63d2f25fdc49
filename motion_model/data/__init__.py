"""Motion data: BVH import, rig maps onto the 22 joints, the corpus builder, captions, the training
dataset and small synthetic motions for tests."""
