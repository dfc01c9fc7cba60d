; Definitions

(contract_declaration
  name: (identifier) @name.definition.class) @definition.class

(library_declaration
  name: (identifier) @name.definition.class) @definition.class

(interface_declaration
  name: (identifier) @name.definition.interface) @definition.interface

(struct_declaration
  name: (identifier) @name.definition.struct) @definition.struct

(enum_declaration
  name: (identifier) @name.definition.enum) @definition.enum

(function_definition
  name: (identifier) @name.definition.function) @definition.function

(modifier_definition
  name: (identifier) @name.definition.function) @definition.function

(event_definition
  name: (identifier) @name.definition.type) @definition.type

(error_declaration
  name: (identifier) @name.definition.type) @definition.type

(state_variable_declaration
  name: (identifier) @name.definition.field) @definition.field

(user_defined_type_definition
  name: (identifier) @name.definition.type) @definition.type

; References

(call_expression
  function: (expression
    [
      (identifier) @name.reference.call
      (member_expression property: (identifier) @name.reference.call)
    ]))

(emit_statement
  name: (expression (identifier) @name.reference.call))

(inheritance_specifier
  ancestor: (user_defined_type (identifier) @name.reference.class))
