"""The user study of the IKMo paper, replayable (`ikmo study build|serve|analyze|simulate`):
definition (the study file), design (each participant's trials), build (stimuli + manifest),
responses (the SQLite store of answers), scoring and raters (simulated participants), analysis
and report (statistics, figures, markdown/HTML)."""
