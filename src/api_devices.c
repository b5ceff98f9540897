/* placeholder: replaced by the module author */
typedef int pushrelay_placeholder_api_devices;
