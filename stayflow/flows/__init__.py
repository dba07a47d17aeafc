"""Cancel-flow configuration: reasons, offers, audiences, experiences and experiments."""
