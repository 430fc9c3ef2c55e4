package check

// ValidateWith is Validate with the environment and the clock given.
var ValidateWith = validate
