"""One small module per USSD gateway: parse its request into a ``Turn``, render a page back."""
