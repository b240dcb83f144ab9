package cel

import (
	"fmt"
	"reflect"
	"sync"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/sluice-serve/sluice/gateway/oip"
)

// The struct types rules see. They are declared to the checker through
// registry, so a misspelt field is a compile error, and read at run time
// without reflection: the interpreter calls a field's getter on the Go
// object that stands for the value.
var (
	requestType  = types.NewObjectType("sluice.Request")
	upstreamType = types.NewObjectType("sluice.Upstream")
	tensorType   = types.NewObjectType("sluice.Tensor")
)

// field is one field of a struct type: its CEL type and how to read it
// from the object that stands for the value (a native Go value or a
// ref.Val; nil for an object of another type). has() holds for a field
// that is not empty, as for proto3 scalars.
type field struct {
	name string
	typ  *types.Type
	get  func(obj any) any
}

// structDesc describes one struct type to the checker and the interpreter.
type structDesc struct {
	typ    *types.Type
	fields []field
	names  []string
	byName map[string]*types.FieldType
	index  map[string]int
}

func newStructDesc(typ *types.Type, fields ...field) *structDesc {
	d := &structDesc{typ: typ, fields: fields, byName: map[string]*types.FieldType{}, index: map[string]int{}}
	for i, f := range fields {
		d.names = append(d.names, f.name)
		d.index[f.name] = i
		d.byName[f.name] = &types.FieldType{
			Type:  f.typ,
			IsSet: func(obj any) bool { return !isEmpty(f.get(obj)) },
			GetFrom: func(obj any) (any, error) {
				if v := f.get(obj); v != nil {
					return v, nil
				}
				return nil, fmt.Errorf("no such field '%s' on %T", f.name, obj)
			},
		}
	}
	return d
}

// isEmpty reports whether a field's value is empty: has() is false.
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case map[string]string:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	case []int64:
		return len(v) == 0
	case types.Null:
		return true
	case traits.Sizer:
		return v.Size() == types.IntZero
	}
	return false
}

// The descriptions of the struct types.
var (
	requestDesc = newStructDesc(requestType,
		field{"headers", types.NewMapType(types.StringType, types.StringType), onInput[requestKind]((*Input).headerMap)},
		field{"id", types.StringType, onInput[requestKind](func(in *Input) any { return in.ID })},
		field{"model", types.StringType, onInput[requestKind](func(in *Input) any { return in.Model })},
	)
	upstreamDesc = newStructDesc(upstreamType,
		field{"name", types.StringType, onInput[upstreamKind](func(in *Input) any { return in.Upstream })},
		field{"output", types.DynType, onInput[upstreamKind]((*Input).output)},
		field{"outputs", types.NewMapType(types.StringType, tensorType), onInput[upstreamKind]((*Input).outputs)},
	)
	tensorDesc = newStructDesc(tensorType,
		field{"datatype", types.StringType, onTensor(func(t *tensorObj) any { return string(t.t.Datatype) })},
		field{"shape", types.NewListType(types.IntType), onTensor((*tensorObj).shape)},
		field{"data", types.NewListType(types.DynType), onTensor((*tensorObj).values)},
	)
)

// onInput makes a field getter of a function of the Input behind a
// request (K requestKind) or upstream (K upstreamKind) object.
func onInput[K inputKind, T any](get func(*Input) T) func(any) any {
	return func(o any) any {
		if v, ok := o.(*inputObj[K]); ok {
			return get((*Input)(v))
		}
		return nil
	}
}

// onTensor is onInput for tensors.
func onTensor(get func(*tensorObj) any) func(any) any {
	return func(o any) any {
		if t, ok := o.(*tensorObj); ok {
			return get(t)
		}
		return nil
	}
}

// registry is cel-go's type registry with Sluice's struct types added.
// Rules read them but cannot construct them (see noStructLiterals).
type registry struct{ *types.Registry }

var structs = map[string]*structDesc{
	requestType.TypeName():  requestDesc,
	upstreamType.TypeName(): upstreamDesc,
	tensorType.TypeName():   tensorDesc,
}

func newRegistry() (*registry, error) {
	r, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	return &registry{r}, nil
}

// FindStructType implements types.Provider.
func (r *registry) FindStructType(name string) (*types.Type, bool) {
	if d, ok := structs[name]; ok {
		return types.NewTypeTypeWithParam(d.typ), true
	}
	return r.Registry.FindStructType(name)
}

// NewValue implements types.Provider. noStructLiterals keeps rules from
// getting here with Sluice's types.
func (r *registry) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := structs[name]; ok {
		return types.NewErr("%s values cannot be constructed", name)
	}
	return r.Registry.NewValue(name, fields)
}

// FindStructFieldNames implements types.Provider.
func (r *registry) FindStructFieldNames(name string) ([]string, bool) {
	if d, ok := structs[name]; ok {
		return d.names, true
	}
	return r.Registry.FindStructFieldNames(name)
}

// FindStructFieldType implements types.Provider.
func (r *registry) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	if d, ok := structs[name]; ok {
		ft, ok := d.byName[fieldName]
		return ft, ok
	}
	return r.Registry.FindStructFieldType(name, fieldName)
}

// object is implemented by the Go values behind the struct types.
type object interface {
	ref.Val
	desc() *structDesc
}

// getField returns field f of o as a CEL value.
func getField(o object, f ref.Val) ref.Val {
	d := o.desc()
	name, ok := f.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(f)
	}
	i, ok := d.index[string(name)]
	if !ok {
		return types.NewErr("no such field '%s' on %s", string(name), d.typ.TypeName())
	}
	return adapter.NativeToValue(d.fields[i].get(o))
}

// isSetField reports whether field f of o is set (not empty).
func isSetField(o object, f ref.Val) ref.Val {
	d := o.desc()
	name, ok := f.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(f)
	}
	i, ok := d.index[string(name)]
	if !ok {
		return types.NewErr("no such field '%s' on %s", string(name), d.typ.TypeName())
	}
	return types.Bool(!isEmpty(d.fields[i].get(o)))
}

// equalObjects compares two objects field by field.
func equalObjects(o object, other ref.Val) ref.Val {
	p, ok := other.(object)
	if !ok || p.desc() != o.desc() {
		return types.False
	}
	if o == p {
		return types.True
	}
	for _, f := range o.desc().fields {
		a := adapter.NativeToValue(f.get(o))
		b := adapter.NativeToValue(f.get(p))
		if a.Equal(b) != types.True {
			return types.False
		}
	}
	return types.True
}

// convertObject converts o to type t: to itself, or to its type.
func convertObject(o object, t ref.Type) ref.Val {
	switch t.TypeName() {
	case o.desc().typ.TypeName():
		return o
	case types.TypeType.TypeName():
		return o.desc().typ
	}
	return types.NewErr("type conversion error from '%s' to '%s'", o.desc().typ.TypeName(), t.TypeName())
}

// adapter converts the natives that getters return. Those are strings,
// lists and maps of them, and JSON values, which the default registry
// handles; Sluice's own objects are ref.Vals already.
var adapter = types.DefaultTypeAdapter

// inputObj is a struct variable viewing an Input: the request or the
// upstream, told apart by K alone, so that a variable is the Input itself
// converted (no allocation per evaluation).
type inputObj[K inputKind] Input

// inputKind gives an inputObj its description.
type inputKind interface{ desc() *structDesc }

type (
	requestKind  struct{}
	upstreamKind struct{}
	requestObj   = inputObj[requestKind]  // the request variable
	upstreamObj  = inputObj[upstreamKind] // the upstream variable
)

func (requestKind) desc() *structDesc  { return requestDesc }
func (upstreamKind) desc() *structDesc { return upstreamDesc }

func (o *inputObj[K]) desc() *structDesc {
	var k K
	return k.desc()
}

// ConvertToNative implements ref.Val.
func (o *inputObj[K]) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("%s cannot be converted to %v", o.desc().typ.TypeName(), t)
}

// ConvertToType implements ref.Val.
func (o *inputObj[K]) ConvertToType(t ref.Type) ref.Val { return convertObject(o, t) }

// Equal implements ref.Val.
func (o *inputObj[K]) Equal(other ref.Val) ref.Val { return equalObjects(o, other) }

// Type implements ref.Val.
func (o *inputObj[K]) Type() ref.Type { return o.desc().typ }

// Value implements ref.Val. It is the object itself, which the field
// getters take.
func (o *inputObj[K]) Value() any { return o }

// Get implements traits.Indexer.
func (o *inputObj[K]) Get(f ref.Val) ref.Val { return getField(o, f) }

// IsSet implements traits.FieldTester.
func (o *inputObj[K]) IsSet(f ref.Val) ref.Val { return isSetField(o, f) }

// tensorObj is one OIP tensor. Its elements are converted to CEL values
// on first use of data, once.
type tensorObj struct {
	t    *oip.Tensor
	once sync.Once
	data ref.Val
}

func (t *tensorObj) desc() *structDesc { return tensorDesc }

// shape returns the tensor's shape: []int64, which the adapter lists.
func (t *tensorObj) shape() any {
	if t.t.Shape == nil {
		return []int64{}
	}
	return t.t.Shape
}

// values returns the tensor's elements, flattened, as a CEL list.
func (t *tensorObj) values() any {
	t.once.Do(func() { t.data = tensorValues(t.t) })
	return t.data
}

// ConvertToNative implements ref.Val.
func (t *tensorObj) ConvertToNative(rt reflect.Type) (any, error) {
	return nil, fmt.Errorf("%s cannot be converted to %v", tensorType.TypeName(), rt)
}

// ConvertToType implements ref.Val.
func (t *tensorObj) ConvertToType(typ ref.Type) ref.Val { return convertObject(t, typ) }

// Equal implements ref.Val.
func (t *tensorObj) Equal(o ref.Val) ref.Val { return equalObjects(t, o) }

// Type implements ref.Val.
func (t *tensorObj) Type() ref.Type { return tensorType }

// Value implements ref.Val.
func (t *tensorObj) Value() any { return t }

// Get implements traits.Indexer.
func (t *tensorObj) Get(f ref.Val) ref.Val { return getField(t, f) }

// IsSet implements traits.FieldTester.
func (t *tensorObj) IsSet(f ref.Val) ref.Val { return isSetField(t, f) }
