"""What the command line runs on a trained model: evaluation of a checkpoint on a corpus."""
