"""Task templates (*.yaml, rendered per run by tpt.evaluate.render) and the functions they name."""
