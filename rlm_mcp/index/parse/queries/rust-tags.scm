; Definitions

(struct_item
  name: (type_identifier) @name.definition.struct) @definition.struct

(union_item
  name: (type_identifier) @name.definition.struct) @definition.struct

(enum_item
  name: (type_identifier) @name.definition.enum) @definition.enum

(trait_item
  name: (type_identifier) @name.definition.trait) @definition.trait

(type_item
  name: (type_identifier) @name.definition.type) @definition.type

(mod_item
  name: (identifier) @name.definition.module) @definition.module

(function_item
  name: (identifier) @name.definition.function) @definition.function

(function_signature_item
  name: (identifier) @name.definition.function) @definition.function

(macro_definition
  name: (identifier) @name.definition.macro) @definition.macro

(const_item
  name: (identifier) @name.definition.constant) @definition.constant

(static_item
  name: (identifier) @name.definition.variable) @definition.variable

(impl_item
  type: [
    (type_identifier) @name.scope
    (generic_type type: (type_identifier) @name.scope)
    (scoped_type_identifier name: (type_identifier) @name.scope)
  ]) @scope

; References

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (field_expression
    field: (field_identifier) @name.reference.call))

(call_expression
  function: (scoped_identifier
    name: (identifier) @name.reference.call))

(generic_function
  function: (identifier) @name.reference.call)

(macro_invocation
  macro: (identifier) @name.reference.call)

(impl_item
  trait: (type_identifier) @name.reference.trait)

(struct_expression
  name: (type_identifier) @name.reference.class)

(parameter
  type: [
    (type_identifier) @name.reference.type
    (reference_type type: (type_identifier) @name.reference.type)
  ])

(generic_type
  type: (type_identifier) @name.reference.type)
