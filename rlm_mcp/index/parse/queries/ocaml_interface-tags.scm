; Definitions

(value_specification
  (value_name) @name.definition.function) @definition.function

(external
  (value_name) @name.definition.function) @definition.function

(type_definition
  (type_binding
    name: (type_constructor) @name.definition.type)) @definition.type

(module_definition
  (module_binding
    (module_name) @name.definition.module)) @definition.module

(module_type_definition
  (module_type_name) @name.definition.interface) @definition.interface

; References

(type_constructor_path
  (type_constructor) @name.reference.type)
