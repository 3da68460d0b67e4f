"""One trainer for all studies, and the losses they use."""
