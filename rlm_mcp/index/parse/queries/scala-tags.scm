; Definitions

(class_definition
  name: (identifier) @name.definition.class) @definition.class

(object_definition
  name: (identifier) @name.definition.class) @definition.class

(trait_definition
  name: (identifier) @name.definition.trait) @definition.trait

(enum_definition
  name: (identifier) @name.definition.enum) @definition.enum

(function_definition
  name: (identifier) @name.definition.function) @definition.function

(function_declaration
  name: (identifier) @name.definition.function) @definition.function

(type_definition
  name: (type_identifier) @name.definition.type) @definition.type

(template_body
  (val_definition
    pattern: (identifier) @name.definition.field) @definition.field)

(template_body
  (var_definition
    pattern: (identifier) @name.definition.field) @definition.field)

; References

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (field_expression
    field: (identifier) @name.reference.call))

(instance_expression
  (type_identifier) @name.reference.class)

(extends_clause
  type: (type_identifier) @name.reference.class)

(parameter
  type: (type_identifier) @name.reference.type)
