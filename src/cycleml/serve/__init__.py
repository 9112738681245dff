"""What ``serving/service.py`` (BentoML) uses, testable without a server: the edge (body
limits, content types, documented 4xx), the served model (request schema from the model's
own schema, scoring records, challenger routing) and the prediction log with feedback.

May import scoring, model, data and the leaves; never evaluation, tuning or monitoring
(the service process stays small), never stages or cli.
"""
