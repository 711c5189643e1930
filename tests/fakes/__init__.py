"""Local fakes of outside services that tests run real clients against."""
