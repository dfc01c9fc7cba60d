; Definitions

(namespace_definition
  name: (namespace_name) @name.definition.module) @definition.module

(class_declaration
  name: (name) @name.definition.class) @definition.class

(interface_declaration
  name: (name) @name.definition.interface) @definition.interface

(trait_declaration
  name: (name) @name.definition.trait) @definition.trait

(enum_declaration
  name: (name) @name.definition.enum) @definition.enum

(function_definition
  name: (name) @name.definition.function) @definition.function

(method_declaration
  name: (name) @name.definition.method) @definition.method

(property_declaration
  (property_element
    (variable_name (name) @name.definition.field))) @definition.field

(const_declaration
  (const_element
    (name) @name.definition.constant)) @definition.constant

; References

(function_call_expression
  function: [(name) (qualified_name (name))] @name.reference.call)

(member_call_expression
  name: (name) @name.reference.call)

(nullsafe_member_call_expression
  name: (name) @name.reference.call)

(scoped_call_expression
  name: (name) @name.reference.call)

(object_creation_expression
  [(name) (qualified_name (name))] @name.reference.class)

(base_clause
  [(name) (qualified_name (name))] @name.reference.class)

(class_interface_clause
  [(name) (qualified_name (name))] @name.reference.interface)
