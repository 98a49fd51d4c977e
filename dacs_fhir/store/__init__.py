"""FHIR resource store: versioned resources, search index, transaction Bundles, dose analytics (issue 3).

    store = Store(url); store.upgrade()
    with store.transaction() as tx:
        tx.create(resource); tx.read(rtype, rid); tx.search(rtype, params); tx.process_bundle(bundle)
"""
from . import errors
from .results import Change, History, HistoryEntry, Outcome
from .searching import SearchResult
from .searchparams import PARAMS as SEARCH_PARAMETERS
from .store import Store
from .transaction import Transaction

__all__ = ["Store", "Transaction", "Change", "Outcome", "History", "HistoryEntry", "SearchResult", "SEARCH_PARAMETERS",
           "errors"]
