"""The HumanML3D motion representation: the 22-joint skeleton, rotations, and the 263-feature
encoding of a motion (features ⇄ joints)."""
