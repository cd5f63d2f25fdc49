"""Motion model: skeleton and HumanML3D representation, corpus, networks, diffusion, training.

Knows nothing of agents or tools (imports go ikmo → agents → tools → motion_model).
"""
