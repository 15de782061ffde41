"""Each retailer's contribution to the consortium's model (issue 16): the estimators over a
value function (``values``) and the report of a valuation (``report``). The runs that give a
coalition its value are an experiment (``fedmarket.experiments.contribution``)."""
