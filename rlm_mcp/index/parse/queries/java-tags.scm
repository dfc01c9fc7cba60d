; Definitions

(class_declaration
  name: (identifier) @name.definition.class) @definition.class

(record_declaration
  name: (identifier) @name.definition.class) @definition.class

(interface_declaration
  name: (identifier) @name.definition.interface) @definition.interface

(annotation_type_declaration
  name: (identifier) @name.definition.interface) @definition.interface

(enum_declaration
  name: (identifier) @name.definition.enum) @definition.enum

(method_declaration
  name: (identifier) @name.definition.method) @definition.method

(constructor_declaration
  name: (identifier) @name.definition.method) @definition.method

(field_declaration
  declarator: (variable_declarator
    name: (identifier) @name.definition.field)) @definition.field

(enum_constant
  name: (identifier) @name.definition.constant) @definition.constant

; References

(method_invocation
  name: (identifier) @name.reference.call)

(object_creation_expression
  type: (type_identifier) @name.reference.class)

(superclass
  (type_identifier) @name.reference.class)

(super_interfaces
  (type_list
    (type_identifier) @name.reference.interface))

(type_arguments
  (type_identifier) @name.reference.type)

(formal_parameter
  type: (type_identifier) @name.reference.type)

(method_declaration
  type: (type_identifier) @name.reference.type)
