"""The distributed loop: actor, learner, scripted operator, run config and the `train` job."""
