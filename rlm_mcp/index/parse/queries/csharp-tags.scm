; Definitions

(class_declaration
  name: (identifier) @name.definition.class) @definition.class

(record_declaration
  name: (identifier) @name.definition.class) @definition.class

(struct_declaration
  name: (identifier) @name.definition.struct) @definition.struct

(interface_declaration
  name: (identifier) @name.definition.interface) @definition.interface

(enum_declaration
  name: (identifier) @name.definition.enum) @definition.enum

(namespace_declaration
  name: (_) @name.definition.module) @definition.module

(method_declaration
  name: (identifier) @name.definition.method) @definition.method

(constructor_declaration
  name: (identifier) @name.definition.method) @definition.method

(property_declaration
  name: (identifier) @name.definition.field) @definition.field

(field_declaration
  (variable_declaration
    (variable_declarator
      name: (identifier) @name.definition.field))) @definition.field

(delegate_declaration
  name: (identifier) @name.definition.type) @definition.type

(enum_member_declaration
  name: (identifier) @name.definition.constant) @definition.constant

; References

(invocation_expression
  function: (identifier) @name.reference.call)

(invocation_expression
  function: (member_access_expression
    name: (identifier) @name.reference.call))

(object_creation_expression
  type: (identifier) @name.reference.class)

(base_list
  (identifier) @name.reference.class)

(parameter
  type: (identifier) @name.reference.type)
