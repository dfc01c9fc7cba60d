; Definitions

(class_declaration
  "interface"
  (type_identifier) @name.definition.interface) @definition.interface

(class_declaration
  "enum"
  (type_identifier) @name.definition.enum) @definition.enum

(class_declaration
  (type_identifier) @name.definition.class) @definition.class

(object_declaration
  (type_identifier) @name.definition.class) @definition.class

(companion_object
  (type_identifier) @name.definition.class) @definition.class

(function_declaration
  (simple_identifier) @name.definition.function) @definition.function

(type_alias
  (type_identifier) @name.definition.type) @definition.type

(class_body
  (property_declaration
    (variable_declaration
      (simple_identifier) @name.definition.field)) @definition.field)

(source_file
  (property_declaration
    (variable_declaration
      (simple_identifier) @name.definition.variable)) @definition.variable)

; References

(call_expression
  (simple_identifier) @name.reference.call)

(call_expression
  (navigation_expression
    (navigation_suffix
      (simple_identifier) @name.reference.call)))

(delegation_specifier
  [
    (user_type (type_identifier) @name.reference.class)
    (constructor_invocation (user_type (type_identifier) @name.reference.class))
  ])

(parameter
  (user_type (type_identifier) @name.reference.type))
