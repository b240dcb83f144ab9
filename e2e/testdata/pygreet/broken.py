import greet

app = greet.missing_attribute
