package oip

// Validate checks every input (see Tensor.Validate) and requested output:
// names present and unique, parameters of supported types, and the
// binary_data_output / binary_data parameters, when given, booleans.
func (r *InferRequest) Validate() error {
	if err := validateParams(r.Parameters); err != nil {
		return within("request", err)
	}
	if err := wantBoolParam(r.Parameters, ParamBinaryDataOutput); err != nil {
		return within("request", err)
	}
	if err := validateTensors("input", r.Inputs); err != nil {
		return err
	}
	return validateRequestedOutputs(r.Outputs)
}

// validateRequestedOutputs checks a request's requested outputs.
func validateRequestedOutputs(outs []RequestedOutput) error {
	for i := range outs {
		o := &outs[i]
		if o.Name == "" {
			return errorf("outputs[%d]: missing name", i)
		}
		if err := validateParams(o.Parameters); err != nil {
			return within("output "+o.Name, err)
		}
		if err := wantBoolParam(o.Parameters, ParamBinaryData); err != nil {
			return within("output "+o.Name, err)
		}
	}
	if name, dup := firstDuplicate(len(outs), func(i int) string { return outs[i].Name }); dup {
		return errorf("duplicate output %s", name)
	}
	return nil
}

// Validate checks every output (see Tensor.Validate): names present and
// unique, data matching shape and datatype, parameters of supported types.
func (r *InferResponse) Validate() error {
	if err := validateParams(r.Parameters); err != nil {
		return within("response", err)
	}
	return validateTensors("output", r.Outputs)
}

// validateTensors validates the inputs or outputs (role) of a message.
func validateTensors(role string, ts []Tensor) error {
	for i := range ts {
		t := &ts[i]
		if t.Name == "" {
			return errorf("%ss[%d]: missing name", role, i)
		}
		if err := t.validate(); err != nil {
			return within(role+" "+t.Name, err)
		}
	}
	if name, dup := firstDuplicate(len(ts), func(i int) string { return ts[i].Name }); dup {
		return errorf("duplicate %s %s", role, name)
	}
	return nil
}

// firstDuplicate returns the first of n names that an earlier one repeats.
func firstDuplicate(n int, name func(int) string) (string, bool) {
	if n <= 16 {
		for i := range n {
			for j := range i {
				if name(i) == name(j) {
					return name(i), true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, n)
	for i := range n {
		if _, dup := seen[name(i)]; dup {
			return name(i), true
		}
		seen[name(i)] = struct{}{}
	}
	return "", false
}
