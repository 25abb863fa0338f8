"""Training: configuration, optimizers and schedules, the trainer, run folders, checkpoints.

The trainer's names are importable from here: ``from charnn.train import Trainer, train, resume``.
"""
from .trainer import (BEST, LAST, RESUMABLE, RUN_FILES, ResumeError, RunDirError, StopTraining, Trainer,  # noqa: F401
                      TrainingDiverged, TrainingInterrupted, TrainResult, check_run_dir, default_run_dir,
                      describe, prepare_run_dir, resume, train, write_run_config)
