"""Progressive delivery: canary, shadow and A/B of models, upstreams and agent versions.

Pure and synchronous like every engine here: :mod:`.spec` validates what the user wrote,
:mod:`.assign` splits traffic stickily, :mod:`.stats` holds the Mann-Whitney U test,
:mod:`.analysis` judges baseline against canary over a step's calls, and :mod:`.rollout`
turns judgements, SLO burn and the time into promote / rollback decisions.
"""
