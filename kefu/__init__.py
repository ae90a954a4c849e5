"""kefu (客服): a self-hosted, Chinese-first customer-support desk for a crypto exchange."""

__version__ = "0.1.0"
