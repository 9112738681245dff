"""The pipeline's stages: each module is one dvc.yaml stage and one ``cycleml`` command of
the same name (the list, in order, is :data:`cycleml.names.STAGES`).

Each has ``run(params, paths)``: read its inputs from files, call the library, write its
outputs atomically. Stages import the library and never each other; the library never
imports a stage.
"""
