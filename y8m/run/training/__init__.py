"""`y8m train` in parts: the run config (config), model and optimizer state (state), the step
function (step), the loop and its hook points (loop), the built-in hooks (hooks) and the
end-of-run artefacts (artefacts). `y8m.run.train.train` strings them together.
"""
