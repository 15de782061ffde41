"""The recommender: task ``next-categories`` (which categories of the shared taxonomy a
customer will cart or buy in the horizon), the GRU + NCF model, its ranking metrics, loss and
baselines. Data preparation lives with the rest in ``fedmarket.data`` (``categories``,
``category_vocab``); the model is registered in ``fedmarket.models.registry`` as ``gru-ncf``.
"""
