"""tpt lab: controlled TPT experiments on synthetic reasoning tasks, through the real stages."""
