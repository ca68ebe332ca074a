"""Clock governors: baselines, the learned policy, the safety shield, training and evaluation."""
