"""What joining the consortium is worth to each retailer (issue #16).

``local_only`` trains, for each retailer, the run's model on that retailer's data alone (the
same model, loop, amount of training and DP budget as a client of the run); ``per_retailer``
scores the federated and the local-only models on each retailer's own test customers and
says, per retailer, whether joining pays; ``personal`` gathers the personalised models' scores;
``gains`` tabulates each retailer's gains against its size and base rate (and draws them).
"""
