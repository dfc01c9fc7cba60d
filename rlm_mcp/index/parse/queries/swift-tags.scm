; Definitions

(class_declaration
  declaration_kind: "struct"
  name: (type_identifier) @name.definition.struct) @definition.struct

(class_declaration
  declaration_kind: "enum"
  name: (type_identifier) @name.definition.enum) @definition.enum

(class_declaration
  declaration_kind: "extension"
  name: (user_type (type_identifier) @name.scope)) @scope

(class_declaration
  name: (type_identifier) @name.definition.class) @definition.class

(protocol_declaration
  name: (type_identifier) @name.definition.interface) @definition.interface

(protocol_function_declaration
  name: (simple_identifier) @name.definition.method) @definition.method

(function_declaration
  name: (simple_identifier) @name.definition.function) @definition.function

(init_declaration
  "init" @name.definition.method) @definition.method

(typealias_declaration
  name: (type_identifier) @name.definition.type) @definition.type

(class_body
  (property_declaration
    name: (pattern bound_identifier: (simple_identifier) @name.definition.field)) @definition.field)

; References

(call_expression
  (simple_identifier) @name.reference.call)

(call_expression
  (navigation_expression
    suffix: (navigation_suffix
      suffix: (simple_identifier) @name.reference.call)))

(inheritance_specifier
  inherits_from: (user_type (type_identifier) @name.reference.class))

(parameter
  (user_type (type_identifier) @name.reference.type))
