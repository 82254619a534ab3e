"""How a fit runs: the skorch net, its callbacks and the training recipe.

The only package of skcnn that imports skorch. It never imports an estimator
module: an estimator hands it a :class:`~skcnn._engine.plan.TrainingPlan`
(resolved by :func:`~skcnn._engine.plan.plan_for`, the one function that
reads estimator parameters) and a torch module.
"""
