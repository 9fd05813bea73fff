"""The job RQ's burst benchmark runs."""


def add(x, y):
    return x + y
