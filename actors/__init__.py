"""The pipeline's workers: broker setup, middleware, the four stage actors, storage, webhooks.

Importing the package itself does nothing: each module that declares actors imports
``actors.broker`` first (which sets Dramatiq's global broker from the settings), so importing
``actors.extraction`` in an extraction child stays cheap. ``actors.pipeline`` imports every
stage; ``actors.worker`` is what ``chute worker`` hands to Dramatiq's CLI.
"""
