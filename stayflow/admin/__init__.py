"""The admin web app: people sign in with email and password and see their apps."""
